//! The `tensor` pipeline: tensor-aware scheduling of RoCEv2 traffic (the
//! in-network scheduling draft, §3.1–§3.4, on a DPDK worker).
//!
//! ```text
//! host port ──► parse ──► RoCEv2? ──no──► pair's peer, best effort
//!                          │yes
//!                          ▼
//!        ICRC check ─bad─► drop (icrc_bad)
//!                          ▼
//!        QP table: state machine (UNALLOCATED/SMALL/LARGE/DRAINING),
//!        semantic features (heuristics), feature record ──► FIFO ──► predictor core
//!                          ▼
//!        TTL / ECN rewrite (RFC 1624 checksum update; the ICRC masks both)
//!                          ▼
//!        overlay paths? ──no──► pair's peer (route mode)
//!                          │yes
//!                          ▼
//!        message start: slice plan (paths × slices from the predictions)
//!        Geneve encapsulation + FRAGMENT + metadata TLVs + MAC ──► path's port
//!
//! overlay port ──► Geneve to us? ──► outer checks ──► inner parse ──► MAC check
//!        ──ok──► reorder by stream sequence ──► host port
//!        ──forged──► TLVs ignored, delivered unsequenced at best effort
//!
//! every egress port: strict bands  SMALL (slow) > SMALL (fast) > DRAINING,
//!                    then WDRR per QP, weight = target node's compute power
//! ```
//!
//! The worker owns the QP table, the reorder buffer and the schedulers, so
//! none needs a lock; like `steer`, the pipeline runs on one worker lcore.
//! Allocation happens in [`TensorWorker::new`]; per packet there is none,
//! and nothing panics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use arc_swap::ArcSwap;
use classifier::ethernet::EthernetError;
use classifier::ipv4::Ipv4Packet;
use classifier::ipv6::Ipv6Packet;
use classifier::{parse, BthOpcode, Ecn, FlowKey, IpProtocol, L3Kind, ParseError, ParsedPacket};
use crossbeam_queue::ArrayQueue;
use sched::{FlowDrr, FlowDrrConfig, SchedConfig, Scheduler};
use tensor::encap::{encap_len, read_encap, write_encap, OverlayEndpoint};
use tensor::geneve::GENEVE_UDP_PORT;
use tensor::metadata::{
    ComputeCapabilityTlv, Fragment, MetadataError, MetadataKey, MetadataKeys, MetadataRepr,
    OffloadDecision, OffloadDecisionTlv, OffloadOp, PathPredictionTlv, TensorTlv, TrainingPhase,
    TrainingPhaseTlv,
};
use tensor::plan::{
    offload_decision, plan_message, MessageInput, OffloadConfig, PathInput, PlanConfig, SlicePlan,
};
use tensor::qp_table::QpTable;
use tensor::reorder::{RefuseReason, ReorderBuffer};
use tensor::{
    FeatureRecord, Predictions, QpFlow, QpState, QpThresholds, SemanticFeatures, SemanticSource,
    TensorType,
};

use super::egress::{count_drop, send_pending, Shaper};
use super::tensor_counters::{Event, MetaOutcome, SchedClass, TensorCounters};
use super::{Arrival, Pipeline, QueueRoute, Tick, WorkerConf};
use crate::dpdk::{rdtsc, Mbuf, MbufBurst, MAX_BURST, MAX_PORTS};
use crate::stats::{bump, DropReason, LcoreCounters};
use crate::tensor_config::{TensorConfig, TensorPath};

/// What the tensor worker shares (read-only) with the runtime.
pub struct TensorShared {
    pub config: TensorConfig,
    pub thresholds: QpThresholds,
    pub paths: Vec<TensorPath>,
    pub local_mac: [u8; 6],
    /// Signs what we encapsulate; `None` in route mode.
    pub signing_key: Option<MetadataKey>,
    /// Verifies what we decapsulate.
    pub keys: MetadataKeys,
    pub counters: Arc<TensorCounters>,
    /// The feature FIFO to the predictor core (one per worker).
    pub fifo: Arc<ArrayQueue<FeatureRecord>>,
    /// The predictor core's latest snapshot.
    pub predictions: Arc<ArcSwap<Predictions>>,
    pub tsc_hz: u64,
    /// Seeds the QP table's hash, so flows cannot be chosen to collide.
    pub seed: u64,
}

/// Time between ageing and reorder-timeout rounds.
const HOUSEKEEPING_EVERY_NS: u64 = 100_000;
/// QP slots the ageing sweep visits per round.
const EXPIRE_BUDGET: usize = 64;
/// How many packets ahead to prefetch.
const PREFETCH_AHEAD: usize = 3;
/// Predictions older than this are not used (the plan falls back to the
/// configured capacities).
const PREDICTION_MAX_AGE_NS: u64 = 20_000_000;
/// `node` of a QP whose destination is not a configured node.
const NO_NODE: u16 = u16::MAX;
/// Band index of the WDRR stage, after the strict bands.
const WDRR_BAND: u8 = SchedClass::STRICT as u8;

/// One QP as the worker keeps it.
#[derive(Debug, Clone, Copy)]
struct QpEntry {
    flow: QpFlow,
    /// Index of the destination node, or `NO_NODE`.
    node: u16,
    /// Index of the source node, or `NO_NODE`.
    source_node: u16,
    node_known: bool,
    semantic: SemanticFeatures,
    /// Next sequence number of the QP's overlay stream.
    seq: u32,
    message_id: u32,
    /// Bytes of the current message sent so far (picks the slice).
    message_offset: u64,
    plan: SlicePlan,
    /// Slice of the QP's last packet.
    slice: u32,
    /// Where the QP's last packet was queued, and its ticket in that band,
    /// so that a later packet never overtakes it in a higher band.
    last_port: u16,
    last_band: u8,
    last_ticket: u64,
}

impl Default for QpEntry {
    fn default() -> Self {
        QpEntry {
            flow: QpFlow::default(),
            node: NO_NODE,
            source_node: NO_NODE,
            node_known: false,
            semantic: SemanticFeatures::default(),
            seq: 0,
            message_id: 0,
            message_offset: 0,
            plan: SlicePlan::NONE,
            slice: 0,
            last_port: 0,
            last_band: 0,
            last_ticket: 0,
        }
    }
}

/// A packet in an egress scheduler: the mbuf, its enqueue TSC, its class.
type Item = (Mbuf, u64, SchedClass);

/// A decapsulated packet waiting in the reorder buffer.
struct Held {
    m: Mbuf,
    key: FlowKey,
    hash: u32,
    class: SchedClass,
}

/// One egress port's queueing: strict bands, then WDRR per QP.
struct Egress {
    strict: Scheduler<Item>,
    wdrr: FlowDrr<u32, Item>,
    /// Dequeued but refused by the TX ring: sent first next time.
    pending: MbufBurst,
    shaper: Option<Shaper>,
    /// Per strict band: packets ever queued, and ever dequeued. A packet's
    /// ticket is the queued count before it; it has left once the dequeued
    /// count passes it (each band is FIFO).
    queued: [u64; SchedClass::STRICT],
    dequeued: [u64; SchedClass::STRICT],
}

impl Egress {
    fn backlog(&self) -> usize {
        self.strict.len() + self.wdrr.len() + self.pending.len()
    }

    /// Whether the QP's packet with `ticket` in `band` may still be queued.
    fn still_queued(&self, band: u8, ticket: u64, flow: u32) -> bool {
        match self.dequeued.get(usize::from(band)) {
            Some(&out) => out <= ticket,
            None => self.wdrr.flow_len(flow) > 0,
        }
    }
}

/// Everything a packet needs to be queued.
struct Queued {
    port: usize,
    class: SchedClass,
    flow: u32,
    weight: u32,
    len: u32,
}

/// The tensor worker's private state.
pub struct TensorWorker<'a> {
    shared: &'a TensorShared,
    counters: &'a TensorCounters,
    lcore: &'a LcoreCounters,
    qps: QpTable<QpEntry>,
    egress: Vec<Option<Egress>>,
    reorder: Option<ReorderBuffer<Held>>,
    /// WDRR weight per configured node (learned from COMPUTE_CAPABILITY).
    node_weights: Vec<u32>,
    plan_config: PlanConfig,
    offload_config: OffloadConfig,
    /// The predictor's latest snapshot, reloaded only when it changed.
    predictions: arc_swap::Cache<Arc<ArcSwap<Predictions>>, Arc<Predictions>>,
    /// Parse results of the burst in hand, written in place (taken and
    /// put back each burst, never reallocated).
    parsed: Vec<Result<ParsedPacket, ParseError>>,
    /// The feature record being coalesced (consecutive packets of one QP).
    run: Option<FeatureRecord>,
    ns_per_cycle: f64,
    small_split_bps: f64,
    ecn_mark: u32,
    idle_ns: u64,
    expire_reorder_ns: u64,
    /// This worker's TX queue on every port.
    queue: u16,
}

impl<'a> TensorWorker<'a> {
    pub fn new(conf: &'a WorkerConf, shared: &'a TensorShared) -> TensorWorker<'a> {
        let cfg = &shared.config;
        let limit = cfg.band_limit_packets;
        let strict = SchedConfig::uniform(SchedClass::STRICT, Vec::new(), limit);
        let drr = FlowDrrConfig {
            base_quantum: 1514,
            max_flows: (cfg.qp_table_size).clamp(1, sched::MAX_FLOWS),
            max_packets: (limit as usize).clamp(1, sched::MAX_PACKETS),
            max_packets_per_flow: (limit as usize).clamp(1, sched::MAX_PACKETS),
        };
        let egress = (0..MAX_PORTS)
            .map(|p| {
                let started = conf.started_ports.get(p).copied().unwrap_or(false);
                if !started {
                    return None;
                }
                Some(Egress {
                    strict: Scheduler::new(&strict).ok()?,
                    wdrr: FlowDrr::new(&drr).ok()?,
                    pending: MbufBurst::new(),
                    shaper: cfg
                        .rate_mbps(p as u16)
                        .map(|r| Shaper::new(r, shared.tsc_hz)),
                    queued: [0; SchedClass::STRICT],
                    dequeued: [0; SchedClass::STRICT],
                })
            })
            .collect();
        let reorder = (!shared.paths.is_empty()).then(|| {
            ReorderBuffer::new(
                cfg.reorder_streams,
                cfg.reorder_window,
                cfg.reorder_timeout_us.saturating_mul(1000),
            )
        });
        let plan_config = PlanConfig {
            min_slice_bytes: cfg.min_slice_bytes,
            ..PlanConfig::default()
        };
        let offload_config = OffloadConfig {
            reducer_available: cfg.offload_reducer.is_some(),
            ..OffloadConfig::default()
        };
        TensorWorker {
            shared,
            counters: &shared.counters,
            lcore: &conf.counters,
            qps: QpTable::new(cfg.qp_table_size, shared.seed),
            egress,
            reorder,
            node_weights: cfg.nodes.iter().map(|n| u32::from(n.weight)).collect(),
            plan_config,
            offload_config,
            predictions: arc_swap::Cache::new(Arc::clone(&shared.predictions)),
            parsed: vec![
                Err(ParseError::Ethernet(EthernetError::Truncated {
                    available: 0
                }));
                MAX_BURST
            ],
            run: None,
            ns_per_cycle: 1e9 / shared.tsc_hz.max(1) as f64,
            small_split_bps: cfg.small_rate_split_mbps * 1e6,
            ecn_mark: cfg.ecn_mark_packets,
            idle_ns: shared.thresholds.idle_timeout_ns,
            expire_reorder_ns: 0,
            queue: conf.queue(),
        }
    }

    /// Handles every packet of a burst: classifies, rewrites, encapsulates
    /// or decapsulates, and queues it on its egress port.
    pub fn process_burst(&mut self, route: &QueueRoute, burst: &mut MbufBurst, now_ns: u64) {
        let rx_port = usize::from(route.rx_port.0);
        let from_hosts = route.rx_port.0 == self.shared.config.host_port;
        let default_port = usize::from(route.tx_port.0);
        let received = burst.len() as u64;
        let predictions = **self.predictions.load();
        // Pass 1: parse every packet (prefetching ahead) and warm the QP
        // table lines the lookups will read, so their misses overlap.
        let mut parsed = std::mem::take(&mut self.parsed);
        let mut hashes = [0u32; MAX_BURST];
        {
            let packets = burst.as_slice();
            for m in packets.iter().take(PREFETCH_AHEAD) {
                m.prefetch_data();
            }
            for (i, (slot, h)) in parsed
                .iter_mut()
                .zip(hashes.iter_mut())
                .enumerate()
                .take(packets.len())
            {
                if let Some(ahead) = packets.get(i + PREFETCH_AHEAD) {
                    ahead.prefetch_data();
                }
                let Some(m) = packets.get(i) else { continue };
                *slot = parse(m.data());
                if let Ok(ParsedPacket {
                    flow: Some(key),
                    bth: Some(_),
                    ..
                }) = slot
                {
                    *h = self.qps.hash(key);
                }
            }
            let mut warm = 0u32;
            for h in hashes.iter().take(packets.len()).filter(|&&h| h != 0) {
                warm ^= self.qps.warm(*h);
            }
            core::hint::black_box(warm);
        }
        // Pass 2: decide and queue, in arrival order.
        let mut dropped = [0u64; DropReason::COUNT];
        let mut rx_bytes = 0u64;
        let mut i = 0usize;
        burst.drain_into(|m| {
            let p = parsed.get(i).and_then(|r| r.as_ref().ok());
            let hash = hashes.get(i).copied().unwrap_or(0);
            i += 1;
            rx_bytes += u64::from(m.pkt_len());
            let outcome = if from_hosts {
                self.host_packet(m, p, hash, rx_port, default_port, now_ns, &predictions)
            } else {
                self.network_packet(m, p, rx_port, default_port, now_ns)
            };
            if let Err(reason) = outcome {
                if let Some(d) = dropped.get_mut(reason as usize) {
                    *d += 1;
                }
            }
        });
        self.parsed = parsed;
        self.flush_run();
        if let Some(rx) = self.lcore.ports.get(rx_port) {
            bump(&rx.rx_packets, received);
            bump(&rx.rx_bytes, rx_bytes);
            for (c, n) in rx.drops.iter().zip(dropped) {
                if n > 0 {
                    bump(c, n);
                }
            }
        }
    }

    /// A packet from the GPU hosts.
    #[allow(clippy::too_many_arguments)]
    fn host_packet(
        &mut self,
        mut m: Mbuf,
        p: Option<&ParsedPacket>,
        hash: u32,
        rx_port: usize,
        default_port: usize,
        now_ns: u64,
        predictions: &Predictions,
    ) -> Result<(), DropReason> {
        let len = m.pkt_len();
        let best_effort = Queued {
            port: default_port,
            class: SchedClass::BestEffort,
            flow: 0,
            weight: 1,
            len,
        };
        let (Some(p), Some(key)) = (p, p.and_then(|p| p.flow)) else {
            return self.schedule(m, None, best_effort);
        };
        let Some(bth) = p.bth.filter(|_| !p.is_fragment()) else {
            return self.schedule(m, None, best_effort);
        };
        if self.shared.config.validate_icrc {
            self.counters.event(Event::IcrcChecked);
            match classifier::icrc::verify_icrc(p.l3(m.data())) {
                Ok(true) => {}
                Ok(false) => return Err(DropReason::IcrcBad),
                Err(_) => return Err(DropReason::IcrcUnreadable),
            }
        }
        let th = self.shared.thresholds;
        let nodes = &self.shared.config.nodes;
        let (entry, inserted) = match self.qps.entry_hashed(&key, hash, now_ns) {
            Ok(e) => e,
            Err(_) => {
                // No state for this QP: it still goes through, best effort
                // on its default route.
                self.counters.event(Event::QpTableFull);
                return self.schedule(m, None, best_effort);
            }
        };
        if inserted {
            self.counters.event(Event::QpNew);
        }
        if !entry.node_known {
            entry.node = node_index(nodes, &key.dst_addr);
            entry.source_node = node_index(nodes, &key.src_addr);
            entry.node_known = true;
        }
        let message_start = bth.opcode.is_first() || bth.opcode.is_only() || inserted;
        if let Some(t) = entry
            .flow
            .on_packet(now_ns, len, bth.opcode, bth.dma_len, &th)
        {
            self.counters.transition(t.from, t.to);
        }
        if message_start {
            entry.semantic = heuristic_semantics(bth.opcode, bth.dma_len, &entry.flow, &th);
            entry.message_offset = 0;
            entry.message_id = entry.message_id.wrapping_add(1);
            self.counters
                .semantic(entry.semantic.source, entry.semantic.tensor_type);
        }
        let state = entry.flow.state();
        let rate_bps = entry.flow.rate_bps();
        let class = class_of(state, rate_bps, self.small_split_bps, entry.semantic.source);
        let node = entry.node;
        let weight = self
            .node_weights
            .get(usize::from(node))
            .copied()
            .unwrap_or(1);

        // Where it leaves: the pair's peer, or an overlay path.
        let overlay = !self.shared.paths.is_empty();
        let (port, path_slot) = if overlay {
            if message_start {
                entry.plan = plan_for(
                    &self.shared.paths,
                    predictions,
                    now_ns,
                    entry,
                    bth.dma_len,
                    len,
                    &self.plan_config,
                    th.large_message_bytes,
                );
                if entry.plan.slices > 1 {
                    self.counters.event(Event::MessagesSliced);
                }
            }
            let (slice, lane) = slice_of(
                &entry.plan,
                entry.message_offset,
                self.shared.config.min_slice_bytes,
            );
            let Some(path_id) = entry.plan.paths.get(usize::from(lane)).copied() else {
                return Err(DropReason::NoPath);
            };
            let Some(slot) = self.shared.paths.iter().position(|p| p.id == path_id) else {
                return Err(DropReason::NoPath);
            };
            let port = self
                .shared
                .paths
                .get(slot)
                .map_or(default_port, |p| usize::from(p.port));
            if entry.plan.slices > 1 && (message_start || slice != entry.slice) {
                self.counters.event(Event::Slices);
            }
            entry.slice = slice;
            (port, Some((slot, lane)))
        } else {
            (default_port, None)
        };

        // Rewrites of the inner packet: TTL, then ECN by the egress queue.
        let queue_depth = self
            .egress
            .get(port)
            .and_then(|e| e.as_ref())
            .map_or(0, |e| e.strict.len() + e.wdrr.len()) as u32;
        rewrite_ttl_ecn(
            &mut m,
            p,
            self.shared.config.decrement_ttl,
            self.ecn_mark > 0 && queue_depth > self.ecn_mark,
            self.counters,
        )?;

        let seq = entry.seq;
        let offset = entry.message_offset;
        if path_slot.is_some() {
            entry.seq = entry.seq.wrapping_add(1);
        }
        entry.message_offset = offset.saturating_add(u64::from(len));
        let snapshot = *entry;
        if let Some((slot, lane)) = path_slot {
            let last = bth.opcode.is_last_or_only();
            let meta = self.metadata_for(
                &snapshot,
                slot,
                lane,
                last,
                seq,
                message_start,
                predictions,
                now_ns,
            );
            self.encapsulate(&mut m, &key, hash, slot, &meta)?;
            if let (Some(pk), Some(pb)) = (
                self.counters.path_packets.get(slot),
                self.counters.path_bytes.get(slot),
            ) {
                bump(pk, 1);
                bump(pb, u64::from(m.pkt_len()));
            }
        }

        let record = FeatureRecord {
            t_ns: now_ns,
            qp: hash,
            node,
            ingress_port: rx_port as u8,
            egress_port: port as u8,
            path: path_slot.map_or(u8::MAX, |(s, _)| s as u8),
            state,
            semantic: snapshot.semantic,
            packets: 1,
            bytes: len,
            queue_depth,
            rate_mbps: (rate_bps / 1e6).min(f64::from(u32::MAX)) as u32,
        };
        self.feature(record);
        let q = Queued {
            port,
            class,
            flow: hash,
            weight,
            len: m.pkt_len(),
        };
        // Re-borrow the entry (the feature call needed `self`).
        let entry = self.qps.get_mut_hashed(&key, hash);
        schedule_into(&mut self.egress, entry, m, q, self.counters)
    }

    /// A packet from the network side: an overlay frame to decapsulate, or
    /// anything else to pass to the pair's peer.
    fn network_packet(
        &mut self,
        mut m: Mbuf,
        p: Option<&ParsedPacket>,
        rx_port: usize,
        default_port: usize,
        now_ns: u64,
    ) -> Result<(), DropReason> {
        let len = m.pkt_len();
        let host_port = usize::from(self.shared.config.host_port);
        let pass = Queued {
            port: default_port,
            class: SchedClass::BestEffort,
            flow: 0,
            weight: 1,
            len,
        };
        let is_overlay = self.reorder.is_some()
            && p.and_then(|p| p.flow)
                .is_some_and(|f| f.protocol == IpProtocol::UDP && f.dst_port == GENEVE_UDP_PORT);
        if !is_overlay {
            return self.schedule(m, None, pass);
        }
        let outer = read_encap(m.data()).map_err(|_| DropReason::OverlayMalformed)?;
        let header_len = outer.header_len;
        let inner = m.data().get(header_len..).unwrap_or(&[]);
        let inner_p = parse(inner).map_err(|_| DropReason::InnerUnparsable)?;
        let key = inner_p.flow.ok_or(DropReason::InnerUnparsable)?;
        let verified =
            tensor::metadata::MetadataRepr::parse_verified(outer.options, &key, &self.shared.keys);
        // Authentication failures make the flow's features `Forged` (best
        // effort); a malformed but authentic block only loses its TLVs.
        let mut forged = false;
        let meta = match verified {
            Ok(meta) => {
                self.counters.metadata(MetaOutcome::Accepted);
                Some(meta)
            }
            Err(e) => {
                self.counters.metadata(meta_outcome(&e));
                forged = e.is_auth_failure();
                None
            }
        };
        let hlen = u16::try_from(header_len).map_err(|_| DropReason::OverlayMalformed)?;
        if !m.adj(hlen) {
            return Err(DropReason::OverlayMalformed);
        }
        self.counters.event(Event::Decapsulated);
        if let Some(c) = meta.as_ref().and_then(|m| m.capability) {
            self.learn_capability(&c);
        }
        let semantic = match &meta {
            Some(meta) => semantics_from_tlv(meta),
            None => SemanticFeatures {
                source: if forged {
                    SemanticSource::Forged
                } else {
                    SemanticSource::Heuristic
                },
                ..SemanticFeatures::default()
            },
        };
        // The QP's state at this appliance, from the inner packet.
        let hash = self.qps.hash(&key);
        let th = self.shared.thresholds;
        let mut class = SchedClass::BestEffort;
        let mut node = NO_NODE;
        let mut rate_mbps = 0;
        let mut state = QpState::Unallocated;
        if let Some(bth) = inner_p.bth {
            if let Ok((entry, inserted)) = self.qps.entry_hashed(&key, hash, now_ns) {
                if inserted {
                    self.counters.event(Event::QpNew);
                    entry.node = node_index(&self.shared.config.nodes, &key.dst_addr);
                    entry.node_known = true;
                }
                if let Some(t) =
                    entry
                        .flow
                        .on_packet(now_ns, m.pkt_len(), bth.opcode, bth.dma_len, &th)
                {
                    self.counters.transition(t.from, t.to);
                }
                if bth.opcode.is_first() || bth.opcode.is_only() || inserted {
                    entry.semantic = semantic;
                    self.counters
                        .semantic(semantic.source, semantic.tensor_type);
                }
                state = entry.flow.state();
                rate_mbps = (entry.flow.rate_bps() / 1e6).min(f64::from(u32::MAX)) as u32;
                class = class_of(
                    state,
                    entry.flow.rate_bps(),
                    self.small_split_bps,
                    semantic.source,
                );
                node = entry.node;
            }
        }
        self.feature(FeatureRecord {
            t_ns: now_ns,
            qp: hash,
            node,
            ingress_port: rx_port as u8,
            egress_port: host_port as u8,
            path: u8::MAX,
            state,
            semantic,
            packets: 1,
            bytes: m.pkt_len(),
            queue_depth: 0,
            rate_mbps,
        });
        let held = Held {
            m,
            key,
            hash,
            class,
        };
        let fragment = meta.and_then(|m| m.fragment);
        let Some(frag) = fragment else {
            // Nothing trustworthy to order by: deliver as it came.
            self.counters.event(Event::UnsequencedDelivered);
            self.deliver(held);
            return Ok(());
        };
        let Some(mut reorder) = self.reorder.take() else {
            self.deliver(held);
            return Ok(());
        };
        let pushed = reorder.push(hash, frag.stream_seq, held, now_ns, &mut |h| {
            self.deliver(h)
        });
        self.reorder = Some(reorder);
        match pushed {
            Ok(()) => Ok(()),
            Err(refused) => {
                drop(refused.item);
                Err(match refused.reason {
                    RefuseReason::Late => DropReason::ReorderLate,
                    RefuseReason::Duplicate => DropReason::ReorderDuplicate,
                    RefuseReason::NoStream => DropReason::ReorderNoStream,
                })
            }
        }
    }

    /// Queues a decapsulated packet on the host port. It may come out of
    /// the reorder buffer long after its burst, so a refusal is counted
    /// here, on the port it entered by.
    fn deliver(&mut self, h: Held) {
        let entry = self.qps.get_mut_hashed(&h.key, h.hash);
        let weight = entry
            .as_ref()
            .and_then(|e| self.node_weights.get(usize::from(e.node)))
            .copied()
            .unwrap_or(1);
        let q = Queued {
            port: usize::from(self.shared.config.host_port),
            class: h.class,
            flow: h.hash,
            weight: if h.class == SchedClass::BestEffort {
                1
            } else {
                weight
            },
            len: h.m.pkt_len(),
        };
        let rx_port = usize::from(h.m.rx_port().0);
        if let Err(reason) = schedule_into(&mut self.egress, entry, h.m, q, self.counters) {
            if let Some(rx) = self.lcore.ports.get(rx_port) {
                bump(&rx.drops[reason as usize], 1);
            }
        }
    }

    fn schedule(
        &mut self,
        m: Mbuf,
        entry: Option<&mut QpEntry>,
        q: Queued,
    ) -> Result<(), DropReason> {
        schedule_into(&mut self.egress, entry, m, q, self.counters)
    }

    /// A COMPUTE_CAPABILITY TLV that passed authentication: the node's
    /// WDRR weight follows it.
    fn learn_capability(&mut self, c: &ComputeCapabilityTlv) {
        let nodes = &self.shared.config.nodes;
        if let Some(i) = nodes.iter().position(|n| n.id == c.node_id && !n.local) {
            if let Some(w) = self.node_weights.get_mut(i) {
                *w = u32::from(c.compute_weight.max(1));
                self.counters.event(Event::CapabilityLearned);
            }
        }
    }

    /// The TLVs of one overlay packet: always FRAGMENT, TENSOR_TYPE and
    /// TRAINING_PHASE; on the first packet of a message one more (the
    /// offload decision for all-reduce traffic, else the source node's
    /// capability when it is ours, else the path's prediction), so the
    /// header always fits the mbuf's headroom.
    #[allow(clippy::too_many_arguments)]
    fn metadata_for(
        &self,
        entry: &QpEntry,
        path_slot: usize,
        lane: u8,
        last: bool,
        seq: u32,
        message_start: bool,
        predictions: &Predictions,
        now_ns: u64,
    ) -> MetadataRepr {
        let path_id = self.shared.paths.get(path_slot).map_or(0, |p| p.id);
        let mut meta = MetadataRepr {
            fragment: Some(Fragment {
                message_id: entry.message_id,
                // Which of the plan's slices (lanes) this packet is in;
                // each lane is a set of chunks dealt round robin.
                slice_index: lane,
                slice_count: entry.plan.slices.max(1),
                last,
                path: path_id,
                stream_seq: seq,
            }),
            tensor: Some(TensorTlv {
                tensor_type: entry.semantic.tensor_type,
                gradient_sync: entry.semantic.gradient_sync,
                pipeline_stage: entry.semantic.pipeline_stage,
                batch_position: entry.semantic.batch_position,
            }),
            phase: Some(TrainingPhaseTlv {
                phase: phase_of(&entry.semantic),
                iteration: 0,
            }),
            ..MetadataRepr::default()
        };
        if !message_start {
            return meta;
        }
        let fresh = is_fresh(predictions, now_ns);
        let port = self
            .shared
            .paths
            .get(path_slot)
            .map_or(0, |p| usize::from(p.port));
        let risk = if fresh {
            predictions
                .ports
                .get(port)
                .map_or(0.0, |f| f.congestion_risk[0])
        } else {
            0.0
        };
        if entry.semantic.gradient_sync {
            let msg = MessageInput {
                bytes: entry
                    .plan
                    .slice_bytes
                    .saturating_mul(u64::from(entry.plan.slices.max(1))),
                tensor: entry.semantic,
                node_weight: self
                    .node_weights
                    .get(usize::from(entry.node))
                    .copied()
                    .unwrap_or(1),
                node_backlog_probability: 0.0,
            };
            let participants = self.shared.config.nodes.len() as u16;
            let d = offload_decision(&msg, risk, participants, &self.offload_config);
            if d.offload {
                self.counters.event(Event::OffloadDecided);
                meta.offload = Some(OffloadDecisionTlv {
                    op: OffloadOp::Sum,
                    decision: OffloadDecision::Offload,
                    reducer_id: self.shared.config.offload_reducer.unwrap_or(0),
                });
                return meta;
            }
            self.counters.event(Event::OffloadDeclined);
        }
        if let Some(n) = self
            .shared
            .config
            .nodes
            .get(usize::from(entry.source_node))
            .filter(|n| n.local)
        {
            meta.capability = Some(ComputeCapabilityTlv {
                node_id: n.id,
                compute_weight: n.weight,
                gpu_utilisation: 0,
                flags: 0,
            });
            return meta;
        }
        if fresh {
            if let Some(f) = predictions.paths.get(path_slot) {
                meta.path_prediction = Some(PathPredictionTlv {
                    path_id,
                    horizon_ms: 1,
                    congestion_risk: (risk.clamp(0.0, 1.0) * 255.0) as u8,
                    available_mbps: (f.available_bps[0].max(0.0) / 1e6) as u32,
                });
            }
        }
        meta
    }

    /// Pushes the overlay header in front of the (rewritten) inner frame.
    fn encapsulate(
        &self,
        m: &mut Mbuf,
        key: &FlowKey,
        hash: u32,
        path_slot: usize,
        meta: &MetadataRepr,
    ) -> Result<(), DropReason> {
        let (Some(path), Some(sign), Some(local_ip)) = (
            self.shared.paths.get(path_slot),
            self.shared.signing_key.as_ref(),
            self.shared.config.local_ip,
        ) else {
            return Err(DropReason::NoPath);
        };
        let ep = OverlayEndpoint {
            src_mac: self.shared.local_mac,
            dst_mac: path.next_hop_mac,
            src_ip: local_ip,
            dst_ip: path.remote_ip,
            vni: self.shared.config.vni,
        };
        let inner_len = m.pkt_len() as usize;
        let hlen = encap_len(meta);
        let hlen16 = u16::try_from(hlen).map_err(|_| DropReason::EncapNoRoom)?;
        let Some(hdr) = m.prepend(hlen16) else {
            return Err(DropReason::EncapNoRoom);
        };
        // The entropy port spreads one QP's slices like ECMP would, but
        // keeps a slice's packets together.
        let entropy = (hash as u16) ^ u16::from(path.id);
        match write_encap(hdr, &ep, entropy, inner_len, meta, key, sign) {
            Ok(n) if n == hlen => {
                self.counters.event(Event::Encapsulated);
                Ok(())
            }
            _ => {
                let _ = m.adj(hlen16);
                Err(DropReason::EncapNoRoom)
            }
        }
    }

    /// Adds a packet to the feature record being coalesced, pushing the
    /// previous one when the QP changes.
    fn feature(&mut self, r: FeatureRecord) {
        match self.run.as_mut() {
            Some(run)
                if run.qp == r.qp && run.egress_port == r.egress_port && run.packets < u16::MAX =>
            {
                run.packets += 1;
                run.bytes = run.bytes.saturating_add(r.bytes);
                run.state = r.state;
                run.queue_depth = r.queue_depth;
                run.rate_mbps = r.rate_mbps;
            }
            _ => {
                self.flush_run();
                self.run = Some(r);
            }
        }
    }

    /// Hands the coalesced record to the predictor core; a full FIFO drops
    /// it (counted) and never blocks the worker.
    fn flush_run(&mut self) {
        if let Some(r) = self.run.take() {
            match self.shared.fifo.push(r) {
                Ok(()) => self.counters.event(Event::FifoPushed),
                Err(_) => self.counters.event(Event::FifoFull),
            }
        }
    }

    /// Ages out idle QPs and gives up on reorder gaps that waited too long.
    pub fn housekeeping(&mut self, now_ns: u64) {
        let th = self.shared.thresholds;
        let counters = self.counters;
        let removed = self
            .qps
            .expire(now_ns, self.idle_ns, EXPIRE_BUDGET, |_, e| {
                let mut flow = e.flow;
                if let Some(t) = flow.on_tick(now_ns, &th) {
                    counters.transition(t.from, t.to);
                }
            });
        counters.events(Event::QpExpired, removed as u64);
        if now_ns.wrapping_sub(self.expire_reorder_ns) >= HOUSEKEEPING_EVERY_NS {
            self.expire_reorder_ns = now_ns;
            if let Some(mut reorder) = self.reorder.take() {
                let lost_before = reorder.stats().lost;
                reorder.expire(now_ns, &mut |h| self.deliver(h));
                if reorder.stats().lost > lost_before {
                    counters.event(Event::ReorderTimeouts);
                }
                self.reorder = Some(reorder);
            }
        }
    }

    /// Sends what each egress port may send now: refused packets first,
    /// then strict bands, then WDRR, within the shaper's budget.
    pub fn transmit(&mut self, queue: u16, ignore_shaping: bool) -> bool {
        let mut any = false;
        let now = rdtsc();
        let ns_per_cycle = self.ns_per_cycle;
        let counters = self.counters;
        for (port, slot) in self.egress.iter_mut().enumerate() {
            let Some(e) = slot.as_mut() else { continue };
            if e.pending.is_empty() && e.strict.is_empty() && e.wdrr.is_empty() {
                continue;
            }
            if e.pending.is_empty() {
                if let Some(s) = e.shaper.as_mut() {
                    s.refill(now);
                }
                while e.pending.len() < MAX_BURST {
                    if !(ignore_shaping || e.shaper.as_ref().map_or(true, |s| s.tokens > 0.0)) {
                        break;
                    }
                    let next = match e.strict.dequeue() {
                        Some((band, item, len)) => {
                            if let Some(d) = e.dequeued.get_mut(band) {
                                *d += 1;
                            }
                            Some((item, len))
                        }
                        None => e.wdrr.dequeue().map(|(_, item, len)| (item, len)),
                    };
                    let Some(((m, enqueued, class), len)) = next else {
                        break;
                    };
                    if let Some(s) = e.shaper.as_mut() {
                        s.tokens -= f64::from(len);
                    }
                    let waited_us = now.wrapping_sub(enqueued) as f64 * ns_per_cycle / 1000.0;
                    if let Some(ring) = counters.sojourn_us.get(class as usize) {
                        ring.record(waited_us.min(u32::MAX as f64) as u32);
                    }
                    if let Some(c) = counters
                        .class_tx_bytes
                        .get(port)
                        .and_then(|c| c.get(class as usize))
                    {
                        bump(c, u64::from(len));
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

    /// Packets still queued, pending or held for reordering.
    pub fn backlog(&self) -> usize {
        self.egress
            .iter()
            .flatten()
            .map(Egress::backlog)
            .sum::<usize>()
            + self
                .reorder
                .as_ref()
                .map_or(0, |r| r.stats().held_now as usize)
    }

    /// At shutdown: whatever the reorder buffer holds is delivered in
    /// order (its gaps will not be filled any more).
    pub fn flush_reorder(&mut self) {
        if let Some(mut reorder) = self.reorder.take() {
            reorder.flush(&mut |h| self.deliver(h));
            self.reorder = Some(reorder);
        }
    }

    /// Publishes the reorder buffer's counters.
    pub fn publish_reorder_stats(&self) {
        if let Some(r) = &self.reorder {
            let s = r.stats();
            let c = self.counters;
            c.events[Event::ReorderInOrder as usize].store(s.in_order, Relaxed);
            c.events[Event::ReorderHeld as usize].store(s.reordered, Relaxed);
            c.events[Event::ReorderLost as usize].store(s.lost, Relaxed);
        }
    }

    /// At shutdown: what could not be sent is freed and counted as a drop
    /// on the port it entered by, so rx = tx + drops still holds.
    pub fn discard_backlog(&mut self) {
        for e in self.egress.iter_mut().flatten() {
            while let Some((_, (m, _, _), _)) = e.strict.dequeue() {
                count_drop(self.lcore, m, DropReason::ShutdownBacklog);
            }
            while let Some((_, (m, _, _), _)) = e.wdrr.dequeue() {
                count_drop(self.lcore, m, DropReason::ShutdownBacklog);
            }
            e.pending
                .drain_into(|m| count_drop(self.lcore, m, DropReason::ShutdownBacklog));
        }
    }
}

/// Queues `m` on its port: a strict band by class, or the WDRR stage. A QP
/// never overtakes its own earlier packet: while that one may still wait
/// in a band served later, this one joins it there. So a DRAINING QP's
/// tail is flushed (strict, ahead of every LARGE flow) as soon as nothing
/// of it is left in WDRR, and RoCE's in-order delivery is never broken.
fn schedule_into(
    egress: &mut [Option<Egress>],
    entry: Option<&mut QpEntry>,
    m: Mbuf,
    q: Queued,
    counters: &TensorCounters,
) -> Result<(), DropReason> {
    let Some(e) = egress.get_mut(q.port).and_then(|e| e.as_mut()) else {
        return Err(DropReason::TxQueueFull);
    };
    let mut band = band_of(q.class);
    if let Some(entry) = entry.as_deref() {
        if usize::from(entry.last_port) == q.port
            && entry.last_band > band
            && e.still_queued(entry.last_band, entry.last_ticket, q.flow)
        {
            band = entry.last_band;
        }
    }
    let class = if band == WDRR_BAND && q.class != SchedClass::BestEffort {
        SchedClass::Large
    } else if band == WDRR_BAND {
        SchedClass::BestEffort
    } else {
        q.class
    };
    if let Some(c) = counters
        .class_packets
        .get(q.port)
        .and_then(|c| c.get(class as usize))
    {
        bump(c, 1);
    }
    // An idle, unshaped port: nothing is queued, so nothing can be
    // overtaken; the packet skips the scheduler and joins the TX burst,
    // as a Linux qdisc bypasses an empty queue.
    let m = if e.shaper.is_none() && e.strict.is_empty() && e.wdrr.is_empty() {
        match e.pending.push(m) {
            Ok(()) => {
                if let Some(c) = counters
                    .class_tx_bytes
                    .get(q.port)
                    .and_then(|c| c.get(class as usize))
                {
                    bump(c, u64::from(q.len));
                }
                if let Some(entry) = entry {
                    entry.last_port = q.port as u16;
                    entry.last_band = 0;
                }
                return Ok(());
            }
            Err(m) => m,
        }
    } else {
        m
    };
    let item = (m, rdtsc(), class);
    let ticket;
    if band == WDRR_BAND {
        e.wdrr
            .enqueue(q.flow, item, q.len)
            .map_err(|_| DropReason::SchedQueueFull)?;
        if e.wdrr.weight(q.flow) != Some(q.weight) {
            let _ = e.wdrr.set_weight(q.flow, q.weight);
        }
        ticket = 0;
    } else {
        let b = usize::from(band);
        ticket = e.queued.get(b).copied().unwrap_or(0);
        e.strict
            .enqueue(b, item, q.len)
            .map_err(|_| DropReason::SchedQueueFull)?;
        if let Some(n) = e.queued.get_mut(b) {
            *n += 1;
        }
    }
    if let Some(entry) = entry {
        entry.last_port = q.port as u16;
        entry.last_band = band;
        entry.last_ticket = ticket;
    }
    Ok(())
}

fn band_of(class: SchedClass) -> u8 {
    match class {
        SchedClass::SmallSlow => 0,
        SchedClass::SmallFast => 1,
        SchedClass::Draining => 2,
        SchedClass::Large | SchedClass::BestEffort => WDRR_BAND,
    }
}

/// The scheduling class of a QP's packet.
fn class_of(
    state: QpState,
    rate_bps: f64,
    small_split_bps: f64,
    source: SemanticSource,
) -> SchedClass {
    if source == SemanticSource::Forged {
        return SchedClass::BestEffort;
    }
    match state {
        QpState::Unallocated | QpState::SmallFlow if rate_bps < small_split_bps => {
            SchedClass::SmallSlow
        }
        QpState::Unallocated | QpState::SmallFlow => SchedClass::SmallFast,
        QpState::LargeFlow => SchedClass::Large,
        QpState::Draining => SchedClass::Draining,
    }
}

/// Index of the configured node with this address (IPv4-mapped), or
/// `NO_NODE`.
fn node_index(nodes: &[crate::tensor_config::NodeConfig], addr: &[u8; 16]) -> u16 {
    let v4 = std::net::Ipv6Addr::from(*addr).to_ipv4_mapped();
    v4.and_then(|a| nodes.iter().position(|n| n.ip == a))
        .map_or(NO_NODE, |i| i as u16)
}

/// What a message is when nobody said (documented in architecture.md):
/// an RDMA WRITE of a large message is a gradient chunk of an all-reduce;
/// READs move parameters (parameter-server pulls); a SEND that is already a
/// LARGE flow is an activation of a pipeline stage; the rest is normal.
fn heuristic_semantics(
    op: BthOpcode,
    dma_len: Option<u32>,
    flow: &QpFlow,
    th: &QpThresholds,
) -> SemanticFeatures {
    let large = dma_len.is_some_and(|l| u64::from(l) >= th.large_message_bytes)
        || flow.state() == QpState::LargeFlow;
    let (tensor_type, gradient_sync) = if op.is_write() && large {
        (TensorType::Gradient, true)
    } else if op.is_read_request() || op.is_read_response() {
        (TensorType::Parameter, false)
    } else if op.is_send() && large {
        (TensorType::Activation, false)
    } else {
        (TensorType::Normal, false)
    };
    SemanticFeatures {
        tensor_type,
        gradient_sync,
        source: SemanticSource::Heuristic,
        ..SemanticFeatures::default()
    }
}

/// The training phase a tensor type implies: gradients flow in the
/// backward pass, activations in the forward pass; otherwise unknown.
fn phase_of(s: &SemanticFeatures) -> TrainingPhase {
    match s.tensor_type {
        TensorType::Gradient => TrainingPhase::Backward,
        TensorType::Activation => TrainingPhase::Forward,
        _ => TrainingPhase::Unknown,
    }
}

/// Semantic features from authenticated TLVs.
fn semantics_from_tlv(meta: &MetadataRepr) -> SemanticFeatures {
    match meta.tensor {
        Some(t) => t.semantic(),
        None => SemanticFeatures {
            source: SemanticSource::Tlv,
            ..SemanticFeatures::default()
        },
    }
}

fn meta_outcome(e: &MetadataError) -> MetaOutcome {
    match e {
        MetadataError::BadMac => MetaOutcome::BadMac,
        MetadataError::UnknownKey(_) => MetaOutcome::UnknownKey,
        MetadataError::MissingMac => MetaOutcome::MissingMac,
        _ => MetaOutcome::Malformed,
    }
}

/// Whether a snapshot is recent enough to plan by.
fn is_fresh(predictions: &Predictions, now_ns: u64) -> bool {
    predictions.made_at_ns != 0
        && now_ns.saturating_sub(predictions.made_at_ns) <= PREDICTION_MAX_AGE_NS
}

/// The slice a message offset falls in, and the index of its lane in the
/// plan: the message is cut into slices of `slice_bytes` dealt round
/// robin over the plan's lanes, so that parallel paths carry neighbouring
/// slices and the far side's reorder buffer needs to hold about one slice
/// per path, not half a message.
fn slice_of(plan: &SlicePlan, offset: u64, slice_bytes: u64) -> (u32, u8) {
    if plan.slices <= 1 || slice_bytes == 0 {
        return (0, 0);
    }
    let slice = offset / slice_bytes;
    (
        slice.min(u64::from(u32::MAX)) as u32,
        (slice % u64::from(plan.slices)) as u8,
    )
}

/// A message's plan: its paths and slices from the predicted available
/// bandwidth (or the configured capacity when predictions are stale).
#[allow(clippy::too_many_arguments)]
fn plan_for(
    paths: &[TensorPath],
    predictions: &Predictions,
    now_ns: u64,
    entry: &QpEntry,
    dma_len: Option<u32>,
    len: u32,
    cfg: &PlanConfig,
    large_message_bytes: u64,
) -> SlicePlan {
    let fresh = is_fresh(predictions, now_ns);
    let mut inputs = [PathInput::default(); tensor::prediction::MAX_PREDICTED_PATHS];
    let n = paths.len().min(inputs.len());
    for (i, (slot, p)) in inputs.iter_mut().zip(paths).enumerate() {
        let available = if fresh {
            predictions
                .paths
                .get(i)
                .map_or([p.capacity_bps as f32; tensor::HORIZONS], |f| {
                    f.available_bps
                })
        } else {
            [p.capacity_bps as f32; tensor::HORIZONS]
        };
        *slot = PathInput {
            id: p.id,
            port: p.port as u8,
            latency_ns: p.latency_ns,
            capacity_bps: p.capacity_bps,
            available_bps: available,
            usable: true,
        };
    }
    let bytes = match (dma_len, entry.flow.state()) {
        (Some(l), _) => u64::from(l),
        (None, QpState::LargeFlow) => large_message_bytes,
        (None, _) => u64::from(len),
    };
    let msg = MessageInput {
        bytes,
        tensor: entry.semantic,
        node_weight: 1,
        node_backlog_probability: 0.0,
    };
    let mut plan = plan_message(inputs.get(..n).unwrap_or(&[]), &msg, cfg);
    interleave_lanes(&mut plan);
    plan
}

/// Orders a plan's lanes so that consecutive lanes alternate between its
/// paths ([1,1,2,2] becomes [1,2,1,2]), keeping each path's share. Slices
/// are dealt round robin over the lanes, so this keeps the paths carrying
/// neighbouring slices at any moment, and the far side's reorder distance
/// at about one slice per path.
fn interleave_lanes(plan: &mut SlicePlan) {
    let n = usize::from(plan.slices).min(plan.paths.len());
    let mut order = [(0usize, 0u8); tensor::plan::MAX_SLICES];
    for i in 0..n {
        let (Some(&id), Some(slot)) = (plan.paths.get(i), order.get_mut(i)) else {
            continue;
        };
        let earlier = plan
            .paths
            .get(..i)
            .map_or(0, |p| p.iter().filter(|&&q| q == id).count());
        *slot = (earlier, id);
    }
    if let Some(lanes) = order.get_mut(..n) {
        lanes.sort_unstable();
        for (dst, (_, id)) in plan.paths.iter_mut().zip(lanes.iter()) {
            *dst = *id;
        }
    }
}

/// TTL decrement (router mode) and ECN CE marking, with the IPv4 header
/// checksum patched incrementally (RFC 1624). The ICRC masks TOS, TTL and
/// the checksum, so it stays valid without recomputation.
fn rewrite_ttl_ecn(
    m: &mut Mbuf,
    p: &ParsedPacket,
    decrement_ttl: bool,
    mark: bool,
    counters: &TensorCounters,
) -> Result<(), DropReason> {
    if !decrement_ttl && !mark {
        return Ok(());
    }
    let start = usize::from(p.l3_offset);
    let Some(l3) = m.data_mut().get_mut(start..) else {
        return Ok(());
    };
    match p.l3_kind {
        L3Kind::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(l3) else {
                return Ok(());
            };
            if decrement_ttl {
                let ttl = ip.ttl();
                if ttl <= 1 {
                    return Err(DropReason::TtlExpired);
                }
                ip.set_ttl_incremental(ttl - 1);
                counters.event(Event::TtlDecremented);
            }
            if mark && matches!(ip.ecn(), Ecn::Ect0 | Ecn::Ect1) {
                ip.set_ecn_incremental(Ecn::Ce);
                counters.event(Event::EcnMarked);
            }
        }
        L3Kind::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(l3) else {
                return Ok(());
            };
            if decrement_ttl {
                let h = ip.hop_limit();
                if h <= 1 {
                    return Err(DropReason::TtlExpired);
                }
                ip.set_hop_limit(h - 1);
                counters.event(Event::TtlDecremented);
            }
            if mark && matches!(Ecn::from_tos(ip.traffic_class()), Ecn::Ect0 | Ecn::Ect1) {
                ip.set_ecn(Ecn::Ce);
                counters.event(Event::EcnMarked);
            }
        }
        _ => {}
    }
    Ok(())
}

impl Pipeline for TensorWorker<'_> {
    fn process(&mut self, route: &QueueRoute, burst: &mut MbufBurst, tick: &Tick<'_>, _: Arrival) {
        self.process_burst(route, burst, tick.now_ns);
    }

    fn transmit(&mut self, ignore_shaping: bool) -> bool {
        TensorWorker::transmit(self, self.queue, ignore_shaping)
    }

    fn housekeeping(&mut self, now_ns: u64) {
        TensorWorker::housekeeping(self, now_ns);
        self.publish_reorder_stats();
    }

    fn backlog(&self) -> usize {
        TensorWorker::backlog(self)
    }

    /// Whatever the reorder buffer holds is delivered in order (its gaps
    /// will not be filled any more), then drained with the rest.
    fn stopping(&mut self) {
        self.flush_reorder();
        self.publish_reorder_stats();
    }

    fn finish(&mut self) {
        self.discard_backlog();
    }
}

/// Runs the tensor pipeline until `conf.stop` is set.
pub fn run(conf: &WorkerConf, shared: &TensorShared) {
    let mut worker = TensorWorker::new(conf, shared);
    super::run(conf, &mut worker);
}

/// Builds what the tensor worker and the predictor thread share, checking
/// everything that can fail (key file, thresholds, predictor) before EAL
/// launches anything. `seed` keys the QP table's hash.
pub fn build_shared(
    cfg: &TensorConfig,
    nb_ports: usize,
    seed: u64,
) -> anyhow::Result<(TensorShared, tensor::predict::PredictorConfig)> {
    let thresholds = cfg.thresholds()?;
    let paths = cfg.paths()?;
    let local_mac = cfg.local_mac()?;
    let (signing_key, keys) = match &cfg.key_file {
        Some(f) => {
            let control_key =
                control::key::Key::from_file(f).map_err(|e| anyhow::anyhow!("[tensor]: {e}"))?;
            let k = derive_metadata_key(&control_key, cfg.key_id);
            let mut keys = MetadataKeys::new();
            keys.insert(k.clone())
                .map_err(|e| anyhow::anyhow!("[tensor]: metadata key: {e}"))?;
            (Some(k), keys)
        }
        None => (None, MetadataKeys::new()),
    };
    let predictor = crate::predictor_core::predictor_config(cfg, &paths)?;
    let counters = Arc::new(TensorCounters::new(paths.len(), nb_ports));
    let shared = TensorShared {
        config: cfg.clone(),
        thresholds,
        paths,
        local_mac,
        signing_key,
        keys,
        counters,
        fifo: Arc::new(ArrayQueue::new(cfg.feature_fifo_size)),
        predictions: Arc::new(ArcSwap::from_pointee(Predictions::default())),
        tsc_hz: crate::dpdk::tsc_hz(),
        seed,
    };
    Ok((shared, predictor))
}

/// The metadata MAC key: the first 16 bytes of
/// HMAC-SHA256(control-plane key, "intellinode metadata v1" ‖ key id), so
/// both appliances holding the same control key agree on it without a
/// second secret to distribute, and it is never the control key itself.
pub fn derive_metadata_key(control_key: &control::key::Key, key_id: u8) -> MetadataKey {
    let mut context = *b"intellinode metadata v1 ";
    context[context.len() - 1] = key_id;
    let derived = control_key.derive(&context);
    let mut k = [0u8; 16];
    k.copy_from_slice(&derived[..16]);
    MetadataKey::from_bytes(key_id, k)
}
