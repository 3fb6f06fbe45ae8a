//! The tensor engine: everything tensor-aware scheduling decides, as
//! quinn-proto is to quinn. It owns the QP table, the semantics (heuristic
//! or from authenticated TLVs), class choice, message planning and
//! slicing, the metadata it signs, the reorder buffer of the decapsulating
//! side, capability learning and the freshness rule for predictions. It is
//! fed parsed packets (their bytes, for the TTL/ECN rewrite it applies in
//! place), lengths, the predictor's snapshot and the time, and returns a
//! [`Verdict`]: the egress port, how the packet queues there, the overlay
//! header to put in front of it, or why it is dropped. The data plane's
//! worker applies verdicts to mbufs; the tests drive it with byte vectors.
//!
//! ```text
//! host side     ──► qp_of ──► ICRC ──► QP state, semantics, class
//!                   ──► plan (message start) ──► slice, path ──► TTL/ECN
//!                   ──► metadata ──► Verdict::Send { port, queue, encap }
//!
//! network side  ──► classify_network (outer checks, inner key)
//!                   ──► verify_overlay (MAC) ──► accept_overlay:
//!                       QP state, reorder by stream sequence ──► deliveries
//! ```
//!
//! One engine per worker lcore, so nothing in it is locked. The QPs a
//! worker owns are those whose key hashes to it ([`owner`]), on both sides:
//! the host side keys a QP by its RoCEv2 flow key, the decapsulating side
//! by the inner frame's, which is the same key, so one engine holds a QP's
//! state and the reorder stream of every slice of its messages. Learnt
//! compute capabilities are shared by all engines ([`NodeWeights`]).
//! Everything is allocated in [`Engine::new`]; per packet nothing
//! allocates and nothing panics.

use flowtab::rss::Toeplitz;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use classifier::ipv4::Ipv4Packet;
use classifier::ipv6::Ipv6Packet;
use classifier::{
    parse, BthOpcode, BthSummary, Ecn, FlowKey, IpProtocol, L3Kind, ParsedPacket, RocePacket,
};
use control::{DataplaneView, NodeId};

use crate::egress::QueueMeta;
use crate::encap::{addressed_to_overlay, encap_len, read_encap, write_encap, OverlayEndpoint};
use crate::geneve::GENEVE_UDP_PORT;
use crate::metadata::{
    ComputeCapabilityTlv, Fragment, MetadataError, MetadataKey, MetadataKeys, MetadataRepr,
    OffloadDecision, OffloadDecisionTlv, OffloadOp, PathPredictionTlv, TensorTlv, TrainingPhase,
    TrainingPhaseTlv,
};
use crate::path_state::PathLive;
use crate::plan::{
    offload_decision, plan_message, MessageInput, OffloadConfig, PathInput, PlanConfig, SlicePlan,
};
use crate::prediction::MAX_PREDICTED_PATHS;
use crate::qp_table::QpTable;
use crate::reorder::{RefuseReason, ReorderBuffer};
use crate::stats::{Event, MetaOutcome, SchedClass, TensorCounters};
use crate::{
    FeatureRecord, Predictions, QpFlow, QpState, QpThresholds, SemanticFeatures, SemanticSource,
    TensorType,
};

/// Most QP slots the ageing sweep visits per [`Engine::housekeeping`]
/// call; it visits as many as keep its pace
/// ([`flowtab::Table::expire_paced`]).
pub const EXPIRE_BUDGET: usize = 64;
/// Predictions older than this are not used (the plan falls back to the
/// configured capacities).
pub const PREDICTION_MAX_AGE_NS: u64 = 20_000_000;
/// `node` of a QP whose destination is not a configured node.
pub const NO_NODE: u16 = u16::MAX;
/// Feature records an engine holds before [`Engine::drain_features`]
/// hands them over.
pub const FEATURE_BATCH: usize = 128;
/// Records past this many are handed over at the next
/// [`Engine::drain_features`] even within a window, so that a burst of
/// new QPs (at most a burst's packets) still finds room.
const FEATURE_BATCH_FLUSH: usize = FEATURE_BATCH / 2;
/// Slots that find a QP's open feature record (open addressing, at most
/// half full while the batch is below its flush mark).
const COALESCE_SLOTS: usize = 256;
/// Slots probed from a QP's home slot.
const COALESCE_PROBES: usize = 4;
const _: () = assert!(FEATURE_BATCH < 256, "open record indices are u8");

/// An overlay path to the peer appliance, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayPath {
    /// Path id (carried in FRAGMENT and PATH_PREDICTION).
    pub id: u8,
    /// Egress port.
    pub port: u16,
    /// Outer Ethernet destination.
    pub next_hop_mac: [u8; 6],
    /// The peer appliance.
    pub remote_ip: Ipv4Addr,
    /// Capacity, bit/s.
    pub capacity_bps: f64,
    /// One-way latency, ns.
    pub latency_ns: u64,
}

/// A compute node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Id carried in COMPUTE_CAPABILITY TLVs.
    pub id: u32,
    /// Its address (QPs towards it are weighed by its power).
    pub ip: Ipv4Addr,
    /// Configured relative compute power, the WDRR weight.
    pub weight: u16,
    /// Behind this appliance: its capability is announced to the peer.
    pub local: bool,
}

/// The WDRR weight of each configured node, shared by every engine of an
/// appliance: a COMPUTE_CAPABILITY learnt by one worker weighs that node's
/// QPs on all of them. Each update is a plain store (the latest announced
/// weight wins), never a count.
#[derive(Clone)]
pub struct NodeWeights(Arc<[AtomicU32]>);

impl NodeWeights {
    /// The configured weights.
    pub fn new(nodes: &[Node]) -> NodeWeights {
        NodeWeights(
            nodes
                .iter()
                .map(|n| AtomicU32::new(u32::from(n.weight)))
                .collect(),
        )
    }

    /// Node `i`'s weight (1 for an unknown node).
    #[inline]
    pub fn get(&self, i: u16) -> u32 {
        self.0.get(usize::from(i)).map_or(1, |w| w.load(Relaxed))
    }

    fn set(&self, i: usize, w: u32) -> bool {
        self.0.get(i).map(|a| a.store(w, Relaxed)).is_some()
    }
}

/// How an engine behaves; the same for every worker.
#[derive(Clone)]
pub struct EngineConfig {
    /// QP state machine thresholds.
    pub thresholds: QpThresholds,
    /// The port the GPU hosts are on.
    pub host_port: u16,
    /// Overlay paths (none: route mode).
    pub paths: Vec<OverlayPath>,
    /// Compute nodes.
    pub nodes: Vec<Node>,
    /// Check the ICRC of RoCEv2 packets from the hosts.
    pub validate_icrc: bool,
    /// With `validate_icrc`, check one host-side RoCEv2 packet in this
    /// many (per engine, the first one included); 1 checks every packet.
    pub icrc_check_every: u32,
    /// Decrement TTL / hop limit (router mode).
    pub decrement_ttl: bool,
    /// Mark CE on ECN-capable packets queued behind more than this many
    /// packets (0: never).
    pub ecn_mark_packets: u32,
    /// SMALL_FLOW QPs below this rate take the first strict band.
    pub small_rate_split_bps: f64,
    /// Smallest slice of a sliced message.
    pub min_slice_bytes: u64,
    /// An in-network reducer all-reduce traffic may be offloaded to.
    pub offload_reducer: Option<u16>,
    /// This appliance's overlay address.
    pub local_ip: Option<Ipv4Addr>,
    /// Outer Ethernet source.
    pub local_mac: [u8; 6],
    /// Geneve VNI.
    pub vni: u32,
    /// Signs what this appliance encapsulates (`None` in route mode).
    pub signing_key: Option<MetadataKey>,
    /// Verifies what it decapsulates.
    pub keys: MetadataKeys,
    /// QPs this engine's table holds.
    pub qp_table_size: usize,
    /// Reorder buffer: streams, packets per stream, gap timeout.
    pub reorder_streams: usize,
    /// Packets held per stream.
    pub reorder_window: usize,
    /// How long a gap is waited for.
    pub reorder_timeout_ns: u64,
    /// Keys the QP table's hash, so senders cannot aim collisions.
    pub seed: u64,
    /// The host port's RSS key ([`flowtab::rss`]): a QP belongs to the
    /// worker whose queue a NIC hashing its UDP 4-tuple under this key
    /// delivers it to ([`Engine::owner_of`]). The same for every engine
    /// of an appliance, so all agree.
    pub rss_key: [u8; flowtab::rss::RSS_KEY_LEN],
    /// Feature records sum a QP's packets over windows of this many ns,
    /// aligned to multiples of it: the predictor's bin width, so that a
    /// record never straddles a bin and the predictor sees per bin what it
    /// would have seen packet by packet, in one record per QP instead of
    /// one per burst. `0` or `1`: a record per QP per
    /// [`Engine::drain_features`] call.
    pub feature_window_ns: u64,
}

/// A RoCEv2 packet's QP: its key and the key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Qp {
    /// The flow key, with the destination QPN.
    pub key: FlowKey,
    /// Its hash under the appliance's seed.
    pub hash: u32,
}

/// Why the engine refused a packet (the data plane frees and counts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The ICRC does not match.
    IcrcBad,
    /// Too short or too odd to check the ICRC.
    IcrcUnreadable,
    /// The TTL would reach 0 here.
    TtlExpired,
    /// No usable overlay path.
    NoPath,
    /// The encapsulation did not fit the headroom.
    EncapNoRoom,
    /// A frame addressed to the overlay failed an outer check (counted by
    /// its code in [`TensorCounters::overlay_malformed`]).
    OverlayMalformed,
    /// The inner frame does not parse.
    InnerUnparsable,
    /// Behind its reorder stream's delivery point.
    ReorderLate,
    /// Already held.
    ReorderDuplicate,
    /// No reorder stream free.
    ReorderNoStream,
}

/// The overlay header a packet gets.
#[derive(Debug, Clone, Copy)]
pub struct Encap {
    /// Index of the path in the configuration.
    pub path_slot: usize,
    /// The metadata TLVs.
    pub meta: MetadataRepr,
    /// The inner packet's QP key (the MAC binds the metadata to it).
    pub key: FlowKey,
    /// Outer UDP source port entropy.
    pub entropy: u16,
}

impl Encap {
    /// Header bytes to prepend.
    pub fn header_len(&self) -> usize {
        encap_len(&self.meta)
    }
}

/// Where a packet goes.
#[derive(Debug, Clone, Copy)]
pub struct Send {
    /// Egress port.
    pub port: u16,
    /// How it queues there.
    pub queue: QueueMeta,
    /// The overlay header to prepend first, if any.
    pub encap: Option<Encap>,
}

/// What to do with a host-side packet.
#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// Queue it (rewritten in place already).
    Send(Send),
    /// Drop it.
    Drop(Refusal),
}

/// What a network-side frame is.
#[derive(Debug, Clone, Copy)]
pub enum NetworkClass {
    /// Not the overlay's: pass it to the pair's peer, best effort.
    Pass,
    /// A valid overlay frame carrying this QP's packet.
    Overlay(Opened),
    /// Addressed to the overlay but refused.
    Drop(Refusal),
}

/// A valid overlay frame, located.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// Every outer header and option: what decapsulation strips.
    pub header_len: usize,
    /// Where the Geneve options start.
    options_start: usize,
    /// The inner packet's QP.
    pub qp: Qp,
    /// The inner packet's BTH, if RoCEv2.
    bth: Option<BthSummary>,
}

/// An overlay frame's metadata after authentication.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    meta: Option<MetadataRepr>,
    forged: bool,
}

/// A decapsulated packet, in order, for the host port.
#[derive(Debug)]
pub struct Delivery<T> {
    /// The packet.
    pub item: T,
    /// How it queues on the host port.
    pub queue: QueueMeta,
}

/// One QP as the engine keeps it.
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
        }
    }
}

/// A decapsulated packet waiting in the reorder buffer.
struct Held<T> {
    item: T,
    qp: Qp,
    class: SchedClass,
}

/// One worker's tensor state.
pub struct Engine<T> {
    cfg: EngineConfig,
    qps: QpTable<QpEntry>,
    reorder: Option<ReorderBuffer<Held<T>>>,
    weights: NodeWeights,
    plan_config: PlanConfig,
    offload_config: OffloadConfig,
    counters: Arc<TensorCounters>,
    /// Records waiting for [`Engine::drain_features`], one per QP (and
    /// ports and path) and feature window, stamped with its first
    /// packet's time.
    batch: [FeatureRecord; FEATURE_BATCH],
    batched: usize,
    /// Where the feature window the open records belong to ends, ns
    /// (0 before the first record): per packet a comparison, not a
    /// division, finds a window's end.
    window_end_ns: u64,
    /// Host-side RoCEv2 packets until the next ICRC check (0: this one).
    icrc_countdown: u32,
    /// The overlay paths as the control plane last reported them
    /// ([`Engine::observe_view`]), one slot per configured path.
    paths_live: [PathLive; MAX_PREDICTED_PATHS],
    /// Each configured node's GPU utilisation as its last fresh
    /// NODE_STATE reported it, 0–255 for 0–100 % (0 when it has none), for
    /// the COMPUTE_CAPABILITY the appliance announces for its own nodes.
    gpu_utilisation: Vec<u8>,
    /// Where a QP's open record is in `batch` (index + 1; 0: a free
    /// slot), found from the QP hash by [`COALESCE_PROBES`] probes.
    open: [u8; COALESCE_SLOTS],
    /// The NIC's hash of a QP's 4-tuple ([`Engine::owner_of`]).
    rss: Toeplitz,
}

impl<T> Engine<T> {
    /// An engine counting into `counters` (which only it, and the port
    /// schedulers its worker runs, write), sharing `weights`.
    pub fn new(
        cfg: EngineConfig,
        weights: NodeWeights,
        counters: Arc<TensorCounters>,
    ) -> Engine<T> {
        let reorder = (!cfg.paths.is_empty()).then(|| {
            ReorderBuffer::new(
                cfg.reorder_streams,
                cfg.reorder_window,
                cfg.reorder_timeout_ns,
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
        Engine {
            rss: Toeplitz::new(&cfg.rss_key),
            qps: QpTable::new(cfg.qp_table_size, cfg.seed),
            reorder,
            weights,
            plan_config,
            offload_config,
            counters,
            batch: [FeatureRecord::default(); FEATURE_BATCH],
            batched: 0,
            window_end_ns: 0,
            icrc_countdown: 0,
            open: [0; COALESCE_SLOTS],
            gpu_utilisation: vec![0; cfg.nodes.len()],
            paths_live: std::array::from_fn(|i| {
                cfg.paths
                    .get(i)
                    .map_or_else(PathLive::default, PathLive::configured)
            }),
            cfg,
        }
    }

    /// Takes `view`'s reports at `now_ns` into the engine: the overlay
    /// paths' PATH_STATE into the plans of messages that start from now on
    /// ([`crate::path_state`]; a path going down or coming back is
    /// counted), and the configured nodes' NODE_STATE GPU utilisation into
    /// the COMPUTE_CAPABILITY announced for them (0 once a report is no
    /// longer fresh). The data plane calls it when the view changes and
    /// often enough that a report going stale is noticed (a report ages
    /// with no new view).
    pub fn observe_view(&mut self, view: &DataplaneView, now_ns: u64) {
        for (node, gpu) in self.cfg.nodes.iter().zip(self.gpu_utilisation.iter_mut()) {
            let reported = u16::try_from(node.id)
                .ok()
                .and_then(|id| view.node_state(NodeId(id), now_ns).fresh()?.gpu_util);
            *gpu = reported.map_or(0, |u| (u.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
        let mut observed = self.paths_live;
        PathLive::observe(&self.cfg.paths, view, now_ns, &mut observed);
        let slots = self
            .paths_live
            .iter()
            .zip(&observed)
            .zip(&self.counters.path_down);
        for ((was, is), down) in slots.take(self.cfg.paths.len()) {
            match (was.usable, is.usable) {
                (true, false) => self.counters.event(Event::PathDown),
                (false, true) => self.counters.event(Event::PathUp),
                _ => {}
            }
            down.store(u64::from(!is.usable), Relaxed);
        }
        self.paths_live = observed;
    }

    /// The overlay paths as plans see them now, one per configured path.
    pub fn paths_live(&self) -> &[PathLive] {
        self.paths_live
            .get(..self.cfg.paths.len())
            .unwrap_or(&self.paths_live)
    }

    /// The counters this engine writes.
    pub fn counters(&self) -> &TensorCounters {
        &self.counters
    }

    /// The port decapsulated packets leave by.
    pub fn host_port(&self) -> u16 {
        self.cfg.host_port
    }

    /// QPs held.
    pub fn qps(&self) -> usize {
        self.qps.len()
    }

    /// Packets the reorder buffer holds.
    pub fn held(&self) -> usize {
        self.reorder
            .as_ref()
            .map_or(0, |r| r.stats().held_now as usize)
    }

    /// The QP of a host-side packet: RoCEv2, not a fragment, with a flow.
    #[inline]
    pub fn qp_of(&self, p: &ParsedPacket) -> Option<Qp> {
        let key = p.flow?;
        p.bth.filter(|_| !p.is_fragment())?;
        Some(Qp {
            key,
            hash: self.qps.hash(&key),
        })
    }

    /// Which of `workers` owns `qp`: the queue a NIC hashing its UDP
    /// 4-tuple under the RSS key delivers it to (`flowtab::rss`). A QP's
    /// 5-tuple is fixed, so all its packets, and the slices of its
    /// messages at the decapsulating appliance (keyed by the inner
    /// header), meet one engine.
    #[inline]
    pub fn owner_of(&self, qp: &Qp, workers: usize) -> usize {
        if workers < 2 {
            return 0;
        }
        let k = &qp.key;
        let hash = self
            .rss
            .hash_ports(&k.src_addr, &k.dst_addr, k.src_port, k.dst_port);
        flowtab::rss::owner(hash, workers)
    }

    /// The QP of a host-side RoCEv2 packet found by
    /// [`classifier::roce::walk`] (or [`RocePacket::from_parsed`]): one
    /// hash, the same as [`Engine::qp_of`] gives for its full parse.
    #[inline]
    pub fn qp_of_roce(&self, r: &RocePacket) -> Qp {
        Qp {
            key: r.key,
            hash: self.qps.hash(&r.key),
        }
    }

    /// Whether this host-side packet's ICRC is checked: every
    /// `icrc_check_every`-th one, starting with the first.
    #[inline]
    fn icrc_due(&mut self) -> bool {
        if self.icrc_countdown == 0 {
            self.icrc_countdown = self.cfg.icrc_check_every.max(1) - 1;
            true
        } else {
            self.icrc_countdown -= 1;
            false
        }
    }

    /// Stage one of a burst's QP lookups: the index slot a lookup of
    /// `hash` reads first ([`flowtab::Table::prefetch_slot`]); `prefetch`
    /// is the caller's prefetch instruction.
    #[inline]
    pub fn prefetch_slot(&self, hash: u32, prefetch: impl FnOnce(*const u8)) {
        self.qps.prefetch_slot(hash, prefetch);
    }

    /// Stage two, once the slot is in the cache: the lines of the QP's
    /// entry ([`flowtab::Table::prefetch_entry`]).
    #[inline]
    pub fn prefetch_state(&self, hash: u32, prefetch: impl FnMut(*const u8)) {
        // The key, the time and the QP state's leading fields.
        self.qps.prefetch_entry(hash, 2, prefetch);
    }

    /// A packet from the GPU hosts: `frame` is its bytes (rewritten in
    /// place), `p` their parse, `qp` from [`Engine::qp_of`]. `depth` gives
    /// how many packets wait on an egress port (for ECN marking).
    #[allow(clippy::too_many_arguments)]
    pub fn host(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        qp: Option<Qp>,
        rx_port: u16,
        default_port: u16,
        now_ns: u64,
        predictions: &Predictions,
        depth: &impl Fn(u16) -> u32,
    ) -> Verdict {
        match (qp, RocePacket::from_parsed(p)) {
            (Some(qp), Some(r)) => self.host_roce(
                frame,
                &r,
                qp,
                rx_port,
                default_port,
                now_ns,
                predictions,
                depth,
            ),
            _ => Verdict::Send(best_effort(default_port)),
        }
    }

    /// [`Engine::host`] for a RoCEv2 packet located by
    /// [`classifier::roce::walk`], `qp` from [`Engine::qp_of_roce`]: what
    /// the data plane calls (a packet without a QP goes best effort on its
    /// default route, without the engine).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn host_roce(
        &mut self,
        frame: &mut [u8],
        r: &RocePacket,
        qp: Qp,
        rx_port: u16,
        default_port: u16,
        now_ns: u64,
        predictions: &Predictions,
        depth: &impl Fn(u16) -> u32,
    ) -> Verdict {
        let len = frame.len() as u32;
        let bth = r.bth;
        if self.cfg.validate_icrc && self.icrc_due() {
            self.counters.event(Event::IcrcChecked);
            let l3 = r.l3(frame);
            let checked = match r.icrc_layout() {
                Some(layout) => classifier::icrc::verify_icrc_at(l3, layout),
                // IPv6 with extension headers: refused as before.
                None => classifier::icrc::verify_icrc(l3),
            };
            match checked {
                Ok(true) => {}
                Ok(false) => return Verdict::Drop(Refusal::IcrcBad),
                Err(_) => return Verdict::Drop(Refusal::IcrcUnreadable),
            }
        }
        let th = self.cfg.thresholds;
        // By reference: the key is 44 bytes, and the table and the node
        // lookup only read it.
        let key = &qp.key;
        let (entry, inserted) = match self.qps.entry_hashed(key, qp.hash, now_ns) {
            Ok(e) => e,
            Err(_) => {
                // No state for this QP: it still goes through, best effort
                // on its default route.
                self.counters.event(Event::QpTableFull);
                return Verdict::Send(best_effort(default_port));
            }
        };
        if inserted {
            self.counters.event(Event::QpNew);
        }
        if !entry.node_known {
            entry.node = node_index(&self.cfg.nodes, &key.dst_addr);
            entry.source_node = node_index(&self.cfg.nodes, &key.src_addr);
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
        let class = class_of(
            state,
            rate_bps,
            self.cfg.small_rate_split_bps,
            entry.semantic.source,
        );
        let node = entry.node;
        let weight = self.weights.get(node);

        // Where it leaves: the pair's peer, or an overlay path.
        let (port, path_slot) = if self.cfg.paths.is_empty() {
            (default_port, None)
        } else {
            if message_start {
                entry.plan = plan_for(
                    &self.cfg.paths,
                    &self.paths_live,
                    &self.counters,
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
            let (slice, lane) =
                slice_of(&entry.plan, entry.message_offset, self.cfg.min_slice_bytes);
            let Some(path_id) = entry.plan.paths.get(usize::from(lane)).copied() else {
                return Verdict::Drop(Refusal::NoPath);
            };
            let Some(mut slot) = self.cfg.paths.iter().position(|p| p.id == path_id) else {
                return Verdict::Drop(Refusal::NoPath);
            };
            // Its path went down since the message was planned: the rest
            // of the lane takes a path still up. Slices are sequenced per
            // QP, not per path, so the far end reorders them as ever.
            let down = self.paths_live.get(slot).is_some_and(|l| !l.usable);
            if let Some(to) = down
                .then(|| detour(&entry.plan, &self.cfg.paths, &self.paths_live))
                .flatten()
            {
                if let (Some(planned), Some(p)) = (
                    entry.plan.paths.get_mut(usize::from(lane)),
                    self.cfg.paths.get(to),
                ) {
                    *planned = p.id;
                    slot = to;
                    self.counters.event(Event::LanesRerouted);
                }
            }
            let port = self.cfg.paths.get(slot).map_or(default_port, |p| p.port);
            if entry.plan.slices > 1 && (message_start || slice != entry.slice) {
                self.counters.event(Event::Slices);
            }
            entry.slice = slice;
            (port, Some((slot, lane)))
        };

        // Rewrites of the inner packet: TTL, then ECN by the egress queue.
        let queue_depth = depth(port);
        let mark = self.cfg.ecn_mark_packets > 0 && queue_depth > self.cfg.ecn_mark_packets;
        if let Err(refused) = rewrite_ttl_ecn(
            frame,
            r.l3_offset,
            r.l3_kind,
            self.cfg.decrement_ttl,
            mark,
            &self.counters,
        ) {
            return Verdict::Drop(refused);
        }

        let seq = entry.seq;
        let offset = entry.message_offset;
        if path_slot.is_some() {
            entry.seq = entry.seq.wrapping_add(1);
        }
        entry.message_offset = offset.saturating_add(u64::from(len));
        let snapshot = *entry;
        let encap = path_slot.map(|(slot, lane)| Encap {
            path_slot: slot,
            meta: self.metadata_for(
                &snapshot,
                slot,
                lane,
                bth.opcode.is_last_or_only(),
                seq,
                message_start,
                predictions,
                now_ns,
            ),
            key: *key,
            // The entropy port spreads one QP's slices like ECMP would,
            // but keeps a slice's packets together.
            entropy: (qp.hash as u16) ^ u16::from(self.cfg.paths.get(slot).map_or(0, |p| p.id)),
        });
        self.feature(FeatureRecord {
            t_ns: now_ns,
            qp: qp.hash,
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
        });
        Verdict::Send(Send {
            port,
            queue: QueueMeta {
                class,
                flow: qp.hash,
                weight,
            },
            encap,
        })
    }

    /// Writes `e`'s overlay header into `hdr` (exactly
    /// [`Encap::header_len`] bytes, prepended to an inner frame of
    /// `inner_len` bytes), counting it on its path.
    pub fn write_encap(&self, hdr: &mut [u8], inner_len: usize, e: &Encap) -> Result<(), Refusal> {
        let (Some(path), Some(sign), Some(local_ip)) = (
            self.cfg.paths.get(e.path_slot),
            self.cfg.signing_key.as_ref(),
            self.cfg.local_ip,
        ) else {
            return Err(Refusal::NoPath);
        };
        let ep = OverlayEndpoint {
            src_mac: self.cfg.local_mac,
            dst_mac: path.next_hop_mac,
            src_ip: local_ip,
            dst_ip: path.remote_ip,
            vni: self.cfg.vni,
        };
        match write_encap(hdr, &ep, e.entropy, inner_len, &e.meta, &e.key, sign) {
            Ok(n) if n == hdr.len() => {
                self.counters.event(Event::Encapsulated);
                if let (Some(pk), Some(pb)) = (
                    self.counters.path_packets.get(e.path_slot),
                    self.counters.path_bytes.get(e.path_slot),
                ) {
                    counters::bump(pk, 1);
                    counters::bump(pb, (n + inner_len) as u64);
                }
                Ok(())
            }
            _ => Err(Refusal::EncapNoRoom),
        }
    }

    /// What a frame from the network side is. Cheap (no MAC): any worker
    /// may call it to find the QP's owner. A frame addressed to the
    /// overlay that fails an outer check is always a drop, counted by its
    /// code.
    pub fn classify_network(&self, frame: &[u8], p: Option<&ParsedPacket>) -> NetworkClass {
        if self.reorder.is_none() {
            return NetworkClass::Pass;
        }
        let geneve = p
            .and_then(|p| p.flow)
            .is_some_and(|f| f.protocol == IpProtocol::UDP && f.dst_port == GENEVE_UDP_PORT);
        if !geneve && !addressed_to_overlay(frame, self.cfg.local_ip) {
            return NetworkClass::Pass;
        }
        let outer = match read_encap(frame) {
            Ok(o) => o,
            Err(e) => {
                self.counters.overlay_malformed(&e);
                return NetworkClass::Drop(Refusal::OverlayMalformed);
            }
        };
        let inner = frame.get(outer.header_len..).unwrap_or(&[]);
        let Some(inner_p) = parse(inner).ok().filter(|p| p.flow.is_some()) else {
            return NetworkClass::Drop(Refusal::InnerUnparsable);
        };
        let Some(key) = inner_p.flow else {
            return NetworkClass::Drop(Refusal::InnerUnparsable);
        };
        NetworkClass::Overlay(Opened {
            header_len: outer.header_len,
            options_start: outer.header_len - outer.options.len(),
            qp: Qp {
                key,
                hash: self.qps.hash(&key),
            },
            bth: inner_p.bth,
        })
    }

    /// Authenticates an overlay frame's metadata (on the QP's owner, once).
    /// A failed MAC makes the packet's features `Forged` (best effort); a
    /// malformed but authentic block only loses its TLVs. Either is counted
    /// by outcome and under its code (`wire-format.md` §7.5).
    pub fn verify_overlay(&self, frame: &[u8], o: &Opened) -> Verified {
        let options = frame.get(o.options_start..o.header_len).unwrap_or(&[]);
        match MetadataRepr::parse_verified(options, &o.qp.key, &self.cfg.keys) {
            Ok(meta) => {
                self.counters.metadata(MetaOutcome::Accepted);
                Verified {
                    meta: Some(meta),
                    forged: false,
                }
            }
            Err(e) => {
                self.counters.metadata(meta_outcome(&e));
                self.counters.metadata_error(&e);
                Verified {
                    meta: None,
                    forged: e.is_auth_failure(),
                }
            }
        }
    }

    /// A decapsulated packet (`item`, `inner_len` bytes): updates its QP
    /// and passes it, and whatever it releases from the reorder buffer, to
    /// `out` in order. A refused packet is handed back with the reason.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_overlay(
        &mut self,
        o: &Opened,
        v: &Verified,
        item: T,
        inner_len: u32,
        rx_port: u16,
        now_ns: u64,
        out: &mut impl FnMut(Delivery<T>),
    ) -> Result<(), (T, Refusal)> {
        self.counters.event(Event::Decapsulated);
        if let Some(c) = v.meta.as_ref().and_then(|m| m.capability) {
            self.learn_capability(&c);
        }
        let semantic = match &v.meta {
            Some(meta) => semantics_from_tlv(meta),
            None => SemanticFeatures {
                source: if v.forged {
                    SemanticSource::Forged
                } else {
                    SemanticSource::Heuristic
                },
                ..SemanticFeatures::default()
            },
        };
        // The QP's state at this appliance, from the inner packet.
        let Qp { key, hash } = o.qp;
        let th = self.cfg.thresholds;
        let mut class = SchedClass::BestEffort;
        let mut node = NO_NODE;
        let mut rate_mbps = 0;
        let mut state = QpState::Unallocated;
        if let Some(bth) = o.bth {
            if let Ok((entry, inserted)) = self.qps.entry_hashed(&key, hash, now_ns) {
                if inserted {
                    self.counters.event(Event::QpNew);
                    entry.node = node_index(&self.cfg.nodes, &key.dst_addr);
                    entry.node_known = true;
                }
                if let Some(t) =
                    entry
                        .flow
                        .on_packet(now_ns, inner_len, bth.opcode, bth.dma_len, &th)
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
                    self.cfg.small_rate_split_bps,
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
            egress_port: self.cfg.host_port as u8,
            path: u8::MAX,
            state,
            semantic,
            packets: 1,
            bytes: inner_len,
            queue_depth: 0,
            rate_mbps,
        });
        let held = Held {
            item,
            qp: o.qp,
            class,
        };
        let Some(frag) = v.meta.and_then(|m| m.fragment) else {
            // Nothing trustworthy to order by: deliver as it came.
            self.counters.event(Event::UnsequencedDelivered);
            out(self.delivery(held));
            return Ok(());
        };
        let Some(mut reorder) = self.reorder.take() else {
            out(self.delivery(held));
            return Ok(());
        };
        let pushed = reorder.push(hash, frag.stream_seq, held, now_ns, &mut |h| {
            out(self.delivery(h))
        });
        self.reorder = Some(reorder);
        pushed.map_err(|refused| {
            (
                refused.item.item,
                match refused.reason {
                    RefuseReason::Late => Refusal::ReorderLate,
                    RefuseReason::Duplicate => Refusal::ReorderDuplicate,
                    RefuseReason::NoStream => Refusal::ReorderNoStream,
                },
            )
        })
    }

    /// How a decapsulated packet queues on the host port.
    fn delivery(&self, h: Held<T>) -> Delivery<T> {
        let weight = match (h.class, self.qps.get_hashed(&h.qp.key, h.qp.hash)) {
            (SchedClass::BestEffort, _) | (_, None) => 1,
            (_, Some(e)) => self.weights.get(e.node),
        };
        Delivery {
            item: h.item,
            queue: QueueMeta {
                class: h.class,
                flow: h.qp.hash,
                weight,
            },
        }
    }

    /// Ages out idle QPs and gives up on reorder gaps that waited too
    /// long, passing what that releases to `out`.
    pub fn housekeeping(&mut self, now_ns: u64, out: &mut impl FnMut(Delivery<T>)) {
        let th = self.cfg.thresholds;
        let counters = &self.counters;
        let removed = self
            .qps
            .expire_paced(now_ns, th.idle_timeout_ns, EXPIRE_BUDGET, |_, e| {
                let mut flow = e.flow;
                if let Some(t) = flow.on_tick(now_ns, &th) {
                    counters.transition(t.from, t.to);
                }
            });
        counters.events(Event::QpExpired, removed as u64);
        if let Some(mut reorder) = self.reorder.take() {
            let lost_before = reorder.stats().lost;
            reorder.expire(now_ns, &mut |h| out(self.delivery(h)));
            if reorder.stats().lost > lost_before {
                self.counters.event(Event::ReorderTimeouts);
            }
            self.reorder = Some(reorder);
        }
        self.publish_reorder_stats();
    }

    /// At shutdown: whatever the reorder buffer holds goes to `out` in
    /// order (its gaps will not be filled any more).
    pub fn flush(&mut self, out: &mut impl FnMut(Delivery<T>)) {
        if let Some(mut reorder) = self.reorder.take() {
            reorder.flush(&mut |h| out(self.delivery(h)));
            self.reorder = Some(reorder);
        }
        self.publish_reorder_stats();
    }

    fn publish_reorder_stats(&self) {
        if let Some(r) = &self.reorder {
            let s = r.stats();
            let c = &self.counters;
            c.events[Event::ReorderInOrder as usize].store(s.in_order, Relaxed);
            c.events[Event::ReorderHeld as usize].store(s.reordered, Relaxed);
            c.events[Event::ReorderLost as usize].store(s.lost, Relaxed);
        }
    }

    /// Hands the feature records to `push` (the feature FIFO) once their
    /// window has ended by `now_ns`, or once the batch is half full; until
    /// then a QP's packets keep adding to its open record. Called every
    /// burst and every housekeeping pass, so a window's records leave
    /// within a housekeeping interval of its end even when no packet
    /// follows.
    pub fn drain_features(&mut self, now_ns: u64, push: impl FnMut(FeatureRecord) -> bool) {
        let w = self.cfg.feature_window_ns;
        let window_start = self.window_end_ns.saturating_sub(w);
        // Every record is of the open window (the oldest is first), and
        // that window has not ended.
        let open_window = w > 1
            && now_ns < self.window_end_ns
            && self.batch.first().is_some_and(|r| r.t_ns >= window_start);
        if self.batched == 0 || (open_window && self.batched <= FEATURE_BATCH_FLUSH) {
            return;
        }
        self.flush_features(push);
    }

    /// Hands every feature record to `push` now, counting what it
    /// refused: a full FIFO drops a record and never blocks the worker.
    pub fn flush_features(&mut self, mut push: impl FnMut(FeatureRecord) -> bool) {
        let (mut pushed, mut full) = (0u64, 0u64);
        self.open = [0; COALESCE_SLOTS];
        for r in self.batch.iter().take(self.batched) {
            if push(*r) {
                pushed += 1;
            } else {
                full += 1;
            }
        }
        self.batched = 0;
        self.counters.events(Event::FifoPushed, pushed);
        self.counters.events(Event::FifoFull, full);
    }

    /// Adds a packet to its QP's open record (same QP, ports and path,
    /// however the QPs interleave), or opens one. The predictor sums
    /// packets and bytes and keeps the deepest queue, so a coalesced
    /// record tells it what the packets would have one by one.
    fn feature(&mut self, r: FeatureRecord) {
        let w = self.cfg.feature_window_ns;
        if w > 1 && r.t_ns >= self.window_end_ns {
            // A new window: its packets open new records.
            self.window_end_ns = (r.t_ns / w).saturating_add(1).saturating_mul(w);
            self.open = [0; COALESCE_SLOTS];
        }
        // Open addressing over a few slots from the QP hash: with one slot
        // per hash, two QPs sharing it would open a record per packet as
        // they interleave.
        let home = r.qp as usize;
        let mut free = None;
        for probe in 0..COALESCE_PROBES {
            let slot = (home + probe) % COALESCE_SLOTS;
            let open = self.open.get(slot).map_or(0, |&o| usize::from(o));
            let Some(rec) = open.checked_sub(1).and_then(|i| self.batch.get_mut(i)) else {
                free = Some(slot);
                break;
            };
            if rec.qp == r.qp
                && rec.egress_port == r.egress_port
                && rec.ingress_port == r.ingress_port
                && rec.path == r.path
                && rec.packets < u16::MAX
            {
                rec.packets += 1;
                rec.bytes = rec.bytes.saturating_add(r.bytes);
                rec.state = r.state;
                rec.queue_depth = rec.queue_depth.max(r.queue_depth);
                rec.rate_mbps = r.rate_mbps;
                return;
            }
        }
        match self.batch.get_mut(self.batched) {
            Some(rec) => {
                *rec = r;
                self.batched += 1;
                // With every probed slot taken the record still goes out,
                // only not coalesced.
                if let Some(o) = free.and_then(|slot| self.open.get_mut(slot)) {
                    // FEATURE_BATCH < 256, so the index fits.
                    *o = self.batched as u8;
                }
            }
            None => self.counters.event(Event::FifoFull),
        }
    }

    /// A COMPUTE_CAPABILITY TLV that passed authentication: the node's
    /// WDRR weight follows it, on every worker.
    fn learn_capability(&self, c: &ComputeCapabilityTlv) {
        if let Some(i) = self
            .cfg
            .nodes
            .iter()
            .position(|n| n.id == c.node_id && !n.local)
        {
            if self.weights.set(i, u32::from(c.compute_weight.max(1))) {
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
        let path_id = self.cfg.paths.get(path_slot).map_or(0, |p| p.id);
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
            .cfg
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
                node_weight: self.weights.get(entry.node),
                node_backlog_probability: backlog_of(predictions, fresh, entry.node),
            };
            let participants = self.cfg.nodes.len() as u16;
            let d = offload_decision(&msg, risk, participants, &self.offload_config);
            if d.offload {
                self.counters.event(Event::OffloadDecided);
                meta.offload = Some(OffloadDecisionTlv {
                    op: OffloadOp::Sum,
                    decision: OffloadDecision::Offload,
                    reducer_id: self.cfg.offload_reducer.unwrap_or(0),
                });
                return meta;
            }
            self.counters.event(Event::OffloadDeclined);
        }
        if let Some(n) = self
            .cfg
            .nodes
            .get(usize::from(entry.source_node))
            .filter(|n| n.local)
        {
            meta.capability = Some(ComputeCapabilityTlv {
                node_id: n.id,
                compute_weight: n.weight,
                gpu_utilisation: self
                    .gpu_utilisation
                    .get(usize::from(entry.source_node))
                    .copied()
                    .unwrap_or(0),
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
}

/// Where what the engine has no QP for goes: the default port, best effort.
fn best_effort(port: u16) -> Send {
    Send {
        port,
        queue: QueueMeta::BEST_EFFORT,
        encap: None,
    }
}

/// The scheduling class of a QP's packet: forged metadata buys best
/// effort; SMALL flows split by rate into the two first strict bands;
/// DRAINING tails are flushed ahead of LARGE flows.
pub fn class_of(
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
fn node_index(nodes: &[Node], addr: &[u8; 16]) -> u16 {
    let v4 = std::net::Ipv6Addr::from(*addr).to_ipv4_mapped();
    v4.and_then(|a| nodes.iter().position(|n| n.ip == a))
        .map_or(NO_NODE, |i| i as u16)
}

/// What a message is when nobody said (documented in architecture.md):
/// an RDMA WRITE of a large message is a gradient chunk of an all-reduce;
/// READs move parameters (parameter-server pulls); a SEND that is already a
/// LARGE flow is an activation of a pipeline stage; the rest is normal.
pub fn heuristic_semantics(
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
pub fn phase_of(s: &SemanticFeatures) -> TrainingPhase {
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
pub fn is_fresh(predictions: &Predictions, now_ns: u64) -> bool {
    predictions.made_at_ns != 0
        && now_ns.saturating_sub(predictions.made_at_ns) <= PREDICTION_MAX_AGE_NS
}

/// The slice a message offset falls in, and the index of its lane in the
/// plan: the message is cut into slices of `slice_bytes` dealt round
/// robin over the plan's lanes, so that parallel paths carry neighbouring
/// slices and the far side's reorder buffer needs to hold about one slice
/// per path, not half a message.
pub fn slice_of(plan: &SlicePlan, offset: u64, slice_bytes: u64) -> (u32, u8) {
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
/// bandwidth (or the configured capacity when predictions are stale),
/// over the paths the control plane has not reported down (over all of
/// them, as configured, when it reports every one down).
#[allow(clippy::too_many_arguments)]
fn plan_for(
    paths: &[OverlayPath],
    live: &[PathLive],
    counters: &TensorCounters,
    predictions: &Predictions,
    now_ns: u64,
    entry: &QpEntry,
    dma_len: Option<u32>,
    len: u32,
    cfg: &PlanConfig,
    large_message_bytes: u64,
) -> SlicePlan {
    let fresh = is_fresh(predictions, now_ns);
    let n = paths.len().min(MAX_PREDICTED_PATHS).min(live.len());
    let any_usable = live.iter().take(n).any(|l| l.usable);
    if !any_usable && n > 0 {
        counters.event(Event::PlannedOverDownPaths);
    }
    let mut inputs = [PathInput::default(); MAX_PREDICTED_PATHS];
    for (i, ((slot, p), l)) in inputs.iter_mut().zip(paths).zip(live).enumerate() {
        let l = if any_usable {
            *l
        } else {
            PathLive::configured(p)
        };
        let configured = [p.capacity_bps as f32; crate::HORIZONS];
        let mut available = if fresh {
            predictions
                .paths
                .get(i)
                .map_or(configured, |f| f.available_bps)
        } else {
            configured
        };
        for a in &mut available {
            *a = a.min(l.available_bps as f32);
        }
        *slot = PathInput {
            id: p.id,
            port: p.port as u8,
            latency_ns: l.latency_ns,
            capacity_bps: p.capacity_bps,
            available_bps: available,
            usable: l.usable,
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
        node_backlog_probability: backlog_of(predictions, fresh, entry.node),
    };
    let mut plan = plan_message(inputs.get(..n).unwrap_or(&[]), &msg, cfg);
    interleave_lanes(&mut plan);
    plan
}

/// Where a lane of a message under way goes when its planned path went
/// down: another of the message's planned paths that is still up (the
/// message stays on the paths it was planned over), else the path up with
/// the least latency; `None` when none is up (the lane stays, as a message
/// planned over paths all down does).
fn detour(plan: &SlicePlan, paths: &[OverlayPath], live: &[PathLive]) -> Option<usize> {
    let up = |slot: &usize| live.get(*slot).is_some_and(|l| l.usable);
    plan.paths
        .iter()
        .take(usize::from(plan.slices))
        .filter_map(|&id| paths.iter().position(|p| p.id == id))
        .find(up)
        .or_else(|| {
            (0..paths.len())
                .filter(up)
                .min_by_key(|&s| live.get(s).map_or(u64::MAX, |l| l.latency_ns))
        })
}

/// The predicted probability that node `node` (an index into the
/// configured nodes) is backlogged: 0 for an unknown node or stale
/// predictions.
fn backlog_of(predictions: &Predictions, fresh: bool, node: u16) -> f32 {
    if !fresh {
        return 0.0;
    }
    predictions
        .nodes
        .get(usize::from(node))
        .map_or(0.0, |n| n.backlog_probability)
}

/// Orders a plan's lanes so that consecutive lanes alternate between its
/// paths ([1,1,2,2] becomes [1,2,1,2]), keeping each path's share. Slices
/// are dealt round robin over the lanes, so this keeps the paths carrying
/// neighbouring slices at any moment, and the far side's reorder distance
/// at about one slice per path.
pub fn interleave_lanes(plan: &mut SlicePlan) {
    let n = usize::from(plan.slices).min(plan.paths.len());
    let mut order = [(0usize, 0u8); crate::plan::MAX_SLICES];
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
    frame: &mut [u8],
    l3_offset: u16,
    l3_kind: L3Kind,
    decrement_ttl: bool,
    mark: bool,
    counters: &TensorCounters,
) -> Result<(), Refusal> {
    if !decrement_ttl && !mark {
        return Ok(());
    }
    let Some(l3) = frame.get_mut(usize::from(l3_offset)..) else {
        return Ok(());
    };
    match l3_kind {
        L3Kind::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(l3) else {
                return Ok(());
            };
            if decrement_ttl {
                let ttl = ip.ttl();
                if ttl <= 1 {
                    return Err(Refusal::TtlExpired);
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
                    return Err(Refusal::TtlExpired);
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
